"""Stage 5: deploy — everything with side effects on this machine or real hosts.

`base` is the execution seam (`NodeExec`: one node, whatever it is); `systems/` holds one
module per external system written only against it; `orchestrate` runs them in dependency
order; `health` observes them, typed; `deployer` is what a deployment target offers the
command line; `lab/` is the deployer of Linux namespaces on this machine. `files` writes a
rendered tree; `recovery` holds the pure power-loss decisions.
"""
