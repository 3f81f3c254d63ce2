"""Keystone's public WSGI application, for gunicorn inside a lab node.

    gunicorn --bind 198.18.0.11:5000 hastack.agents.keystone_wsgi:application

The PyPI wheel ships no `keystone-wsgi-public` script; `keystone.wsgi.api` builds the
application at import time and Keystone's oslo.config parses `sys.argv` while doing so — under
gunicorn those are gunicorn's own arguments, which Keystone rejects (workers exit 2). So the
arguments are reset before the import; Keystone then reads /etc/keystone/keystone.conf (or
$OS_KEYSTONE_CONFIG_DIR) as it would under any WSGI server.
"""

from __future__ import annotations

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402  (after the reset, on purpose)

__all__ = ["application"]
