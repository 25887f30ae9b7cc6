"""Root-only labs that make the kernel produce real netfilter TRACE output."""
