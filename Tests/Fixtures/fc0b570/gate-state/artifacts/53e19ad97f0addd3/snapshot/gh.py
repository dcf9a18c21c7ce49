import http.client, json, os, ssl, sys
context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
conn = http.client.HTTPSConnection("127.0.0.1", 3128, context=context, timeout=120)
conn.set_tunnel("api.github.com", 443)
conn.request("POST", "/repos/acme/app/issues", body=json.dumps({"title": "compat-github-" + sys.argv[1]}),
             headers={"Content-Type": "application/json", "Accept": "application/vnd.github+json"})
print(conn.getresponse().read().decode())
