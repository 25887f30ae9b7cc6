"""tracelog: readable netfilter TRACE output, one timeline per packet."""

__version__ = "0.1.0"
