"""The HTTP feature server: Feast's FastAPI app behind a request guard.

* ``errors``: request errors and the limits' defaults;
* ``catalog``: the cached registry snapshot requests are checked against;
* ``requests``: validation of read and push bodies;
* ``fast_reads``: reads answered from the online store plugin's reader;
* ``guard``: the ASGI middleware tying them together;
* ``app``: the app (``build_app``, ``create_app``) and ``serve`` (uvicorn).
"""
