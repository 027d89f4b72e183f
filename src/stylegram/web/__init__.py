"""``stylegram serve``: a web page and an HTTP API on the same use cases as the command line.

:func:`stylegram.web.app.create_app` builds the FastAPI app (it needs the ``web`` extra: fastapi, uvicorn,
python-multipart); :mod:`.config` holds the server's options and imports nothing of FastAPI, so the command line
can offer ``serve``'s flags without the extra. Nothing here runs at import time.
"""
