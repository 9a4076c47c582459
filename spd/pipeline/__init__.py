"""The data path: a poller fetches pages window by window, hands them to its emitters and
checkpoints what they acknowledged; jobs run an operation and emit its result. Above spd.config,
spd.sources, spd.state, spd.client and spd.emitters; below spd.app.
"""
