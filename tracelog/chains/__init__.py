"""What the chains, comments and marks of well-known rule writers mean.

Docker, Podman's netavark and Kubernetes' kube-proxy write rules whose chain
names and comments carry meaning: the network a chain serves, the service
and endpoint a DNAT rule leads to, why a drop rule drops.  Each module here
reads one writer's conventions; none changes what the parsers read.
"""
