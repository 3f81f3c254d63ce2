"""Stage 5: deploy — everything with side effects on this machine or real hosts.

`files` writes a rendered tree; `lab` (namespaces on this machine) realises a plan.
"""
