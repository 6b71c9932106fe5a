-- wrk script: POST a small OpenAI chat request (model from the MODEL env var, stream from STREAM).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local model = os.getenv("MODEL") or "gpt"
local stream = os.getenv("STREAM") or "false"
wrk.body = '{"model":"' .. model .. '","stream":' .. stream .. ',"messages":[{"role":"user","content":"Say hello"}]}'
