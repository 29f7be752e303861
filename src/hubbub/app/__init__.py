"""The app layer: `App`, its WebSocket endpoints and channel routes, middleware, folders, HTTP APIs and ASGI."""
