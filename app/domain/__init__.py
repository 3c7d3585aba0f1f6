"""The values every layer shares: contacts, messages, their states and the rules on them.

Plain frozen dataclasses and enums, importing nothing of the project: the store reads and
writes them, the core's use cases pass them around, the UI and the CLI show them.
"""
