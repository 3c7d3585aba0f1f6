"""The local API: a JSON-RPC socket in the profile directory through which the CLI, bots and a
second window reach the process that holds the profile open. Transport only; what the calls
mean lives with whoever passes the handler."""
