"""Use-case functions: the only way anything reads or writes configuration.

Plain functions with keyword-only arguments; the CLI, the TUI and the HTTP shim all call these, none of them
writes SQL itself. Every change records an audit event in the same transaction.
"""
