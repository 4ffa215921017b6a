wrk.method = "POST"
wrk.body = '{"amount":4200}'
wrk.headers["Content-Type"] = "application/json"
