"""Real hosts as nodes: the SSH implementation of the node interface (`ssh.SshExec`) and the
host's service manager (systemd) behind it.

Stage 5 (deploy), beside the lab: everything that speaks to a node through `base.NodeExec`
(the systems' protocol code, health probes, fault verbs) works on a host reached over SSH.
"""
