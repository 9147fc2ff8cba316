"""The query service: a FastAPI app (``web.app.create_app``) and the web page, a thin edge over the core.

``app`` builds the app (middleware, errors, routers, the page); ``routes`` holds one
router per API area; ``deps`` what routes depend on (the service, the API key);
``service`` the state shared between requests; ``schemas`` the API's models.
"""
