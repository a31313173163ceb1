"""RunningHub protocol client: pure Python (requests only), no torch, no ComfyUI.

Modules, one reason each:
  redact       keys shown as `…` + last 4, and scrubbing of any text that might hold one
  sites        the two RunningHub sites and base-URL resolution
  credentials  keys from the environment or the credentials file (named profiles, pools)
  errors       the exception hierarchy users see, one class per thing to do
  codes        RunningHub's business codes mapped onto those exceptions
  records      dataclasses for tasks, outputs, failure reasons, account status
  transport    HTTP with timeouts, deadlines and retries that are safe to repeat
  api          one method per RunningHub endpoint
  polling      waiting for a task: adaptive interval, budgets, interrupt, cancel once
  overrides    nodeInfoList entries and their check against an API-format workflow
  downloads    streamed, capped, retried downloads of untrusted output URLs
  pool         the key pool: which key gets a new task, waiting for capacity (415/421/814)
  native       ComfyUI's own API at {site}/proxy/{key} (the native endpoint): every URL a secret
"""
