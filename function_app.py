"""The Functions app: triggers only translate transport objects and delegate to ``dispatcher``.

The host imports this module just to index it, so nothing heavy happens at import time: clients are
built lazily by the composition root on first use.
"""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
