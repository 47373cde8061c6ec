"""The ASGI application for uvicorn (``confide serve``)."""

from confide.app import create_app

app = create_app()
