"""The HTTP lookup shim: a FastAPI app (``create_app``) and its ``switchboard serve`` service (``HttpService``)."""
