"""The Ansible deployer: real hosts, reached over SSH by ansible-core.

Stage 5 (deploy). `roles` maps the plan onto the shipped roles (one per system), `inventory`
writes and checks a standard Ansible inventory, `driver` stages the rendered files and runs
`ansible-playbook` on the playbook shipped in `playbook/`.
"""
