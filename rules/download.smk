# Real NSD: the files the configured subjects and sessions need, fetched from
# NSD's bucket into resources/nsd/ in NSD's own layout (written by the
# download helpers in src/nrf/data; wired in the NSD ingestion issue).
