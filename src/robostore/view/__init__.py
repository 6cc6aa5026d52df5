"""``robostore view``: look at a dataset on any backend in the browser (needs the ``view`` extra).

:func:`create_app` builds the web app (Starlette) for one dataset; :mod:`.server` runs
it with uvicorn, bound to 127.0.0.1 unless told otherwise. The pages (``static/``) use
the vendored uPlot for the plots; nothing is loaded from elsewhere at run time.
"""

from robostore.view.app import create_app
from robostore.view.server import BackgroundViewer

__all__ = ["BackgroundViewer", "create_app"]
