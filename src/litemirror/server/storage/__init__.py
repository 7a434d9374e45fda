"""The databases, their write path, reads, the journal writer, recovery, the member's state file."""
