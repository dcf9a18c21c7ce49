import http.client, json, os, re, ssl, sys
context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
token = re.search(r'token: "?([^"\s]+)', open(os.environ["KUBECONFIG"]).read()).group(1)
conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=context, timeout=120)
body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compat-kube-" + sys.argv[1]}, "data": {"n": sys.argv[1]}})
conn.request("POST", "/contexts/0/api/v1/namespaces/default/configmaps", body=body,
             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(conn.getresponse().read().decode())
