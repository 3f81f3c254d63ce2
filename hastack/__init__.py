"""hastack: the classic OpenStack HA architecture as a program.

Data flows one way: model -> plan -> checks -> render -> deploy -> chaos -> report,
one package per stage.
"""

__version__ = "0.1.0"
