"""Tests of the HTTP lookup shim, over real sockets."""
