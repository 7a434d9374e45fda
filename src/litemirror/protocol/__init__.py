"""Wire protocol: message types and framing. Pure: no sockets, no clocks."""
