"""rhsim: a local RunningHub simulator.

A real HTTP server on loopback that speaks the RunningHub OpenAPI as described in
`shared/runninghub-api.md`, drift included. Start it with `python -m rhsim --help`.
Depends on the standard library, aiohttp (as ComfyUI does), Pillow, numpy and PyAV.
"""

__version__ = "0.1.0"
