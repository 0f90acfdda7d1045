# Jupyter Notebook 6 configuration of Tessera's jupyter-notebook application.
#
# The notebook server listens on 127.0.0.1, where any process of the machine can reach
# it: a task of another project, another project's notebook kernel. It must answer only
# the platform's proxy, which checks who the browser's user is and forwards each request
# with this instance's secret (the X-Tessera-Proxy-Secret header, TESSERA_PROXY_SECRET in
# the env). A request without it is treated as not signed in: Jupyter refuses it.
import hmac
import os

from notebook.auth.login import LoginHandler

_SECRET = os.environ.get('TESSERA_PROXY_SECRET', '').encode()


class TesseraProxyLogin(LoginHandler):
    """Signed in: a request that carries the proxy's secret. Nothing else signs in."""

    @classmethod
    def get_user(cls, handler):
        if getattr(handler, '_user_id', None):
            return handler._user_id
        sent = handler.request.headers.get('X-Tessera-Proxy-Secret', '').encode()
        user = 'tessera' if _SECRET and hmac.compare_digest(sent, _SECRET) else None
        handler._user_id = user
        return user

    @classmethod
    def get_login_available(cls, settings):
        # There is a login: without the secret, pages redirect to it and the API answers 403.
        return True

    @classmethod
    def is_token_authenticated(cls, handler):
        # Requests come from a browser through the proxy: XSRF and Origin checks stay on.
        return False

    def post(self):
        # No password or token signs in here.
        self.set_status(403)
        self.finish('Open this notebook server from Tessera.')


c = get_config()  # noqa: F821 (defined by Jupyter when it loads a config file)
if _SECRET:
    c.NotebookApp.login_handler_class = TesseraProxyLogin
