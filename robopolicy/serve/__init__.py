"""`robopolicy serve`: a trained policy behind an openpi-compatible websocket server (see docs/deploy.md).

`requests` reads and checks one request, `sessions` keeps each connection's episode on a slot of one
`ActionSelector`, `server` runs the websocket server with its batching inference thread.
"""
