"""The console's state, in plain Python: no Textual, no gRPC.

The app feeds it from its workers; widgets render it.
"""
