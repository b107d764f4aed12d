-- wrk: POST a ~300-byte JSON body shaped like a `default` delivery.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"objectType":"bug","objectID":"1042","product":",3,","project":"5","execution":"5","action":"resolved","actor":"alice","date":"2026-11-20 09:00:35","comment":"","text":"Alice Wang resolved Bug [#1042::Login fails on Safari after the session expires](http://localhost/bug-view-1042.html)"}'
