"""Error pages that fit the request: a message in place for HTMX, a page otherwise."""

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .rendering import wants_partial

MESSAGES = {
    400: "The request was not understood.",
    403: "You are not allowed to do that.",
    404: "That page does not exist.",
    405: "That action is not allowed here.",
    413: "What you sent is too large.",
    500: "Something went wrong on the server; it has been logged.",
}


def _respond(code: int, message: str):
    """Render the error as an in-place message (HTMX) or a full page."""
    if wants_partial():
        body = render_template(
            "_messages.html", oob=False, messages=[("error", message)]
        )
        return body, code, {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
    return render_template("error.html", code=code, message=message), code


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _respond(400, "Your form expired or lacks its security token; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error):
        description = error.description if error.code in (403, 404) and error.description else None
        message = description if description and not description.startswith(("The requested URL", "You don't have")) else MESSAGES.get(error.code, error.name)
        if error.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] // 1024
            message = f"What you sent is larger than the {limit} KiB limit; nothing was saved."
        return _respond(error.code, message)
