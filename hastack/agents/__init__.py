"""Small programs hastack runs on the nodes next to the systems it configures (health
responders). Each is a module run with `python -m hastack.agents.<name>`; they read a config
file rendered by `hastack.render` and import nothing from the other stages."""
