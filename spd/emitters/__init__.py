"""Emitters: where messages go. Each type is a config module (`stdout`, `file`, `webhook`, `kafka`)
whose `build` imports its emitter from a runtime module (`stdout_writer`, `file_writer`,
`webhook_sender`, `kafka_producer`); `registry` lists them and builds emitters from configs."""
