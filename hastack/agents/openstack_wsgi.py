"""An OpenStack API's WSGI application, for gunicorn inside a node.

    gunicorn --config /etc/placement/gunicorn.conf.py
    (wsgi_app = "hastack.agents.openstack_wsgi:application('placement.wsgi.api')")

The PyPI wheels ship their applications as modules (`keystone.wsgi.api`,
`placement.wsgi.api`, `nova.wsgi.osapi_compute`, `glance.wsgi.api`, ...) that build the
application at import time, and some of them (Keystone, Nova) hand `sys.argv` to oslo.config
while doing so — under gunicorn those are gunicorn's own arguments, which they reject (workers
exit 2). So the arguments are reset before the import; each service then reads its files in
/etc/<service>/ as it would under any WSGI server. gunicorn calls this factory with the
module named in the rendered settings.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def application(module: str) -> Any:
    sys.argv = sys.argv[:1]
    return importlib.import_module(module).application
