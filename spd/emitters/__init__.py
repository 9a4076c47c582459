"""Emitters: where messages go. Each type is a module (`stdout`, `file`, `webhook`, `kafka`) with
its emitter and its config model; `registry` lists them and builds emitters from configs."""
