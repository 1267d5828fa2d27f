"""clustersim: a discrete-event simulator of LLM-serving clusters.

Pure cost models (perf, collectives, cost) answer "how long / how much"; thin SimPy
processes (serving) hold state and time; records stream to Arrow files (records).
"""

__version__ = "0.1.0"
