"""What the web-facing check families share: a bounded HTTP client (net) and a bounded same-site crawler (crawl).

Not a check family itself (no entry point): http, privacy and reputation use it, and the
privacy and reputation checks share one crawl per target through the check context memo.
"""
