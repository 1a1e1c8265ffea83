"""Seeds the SDK API check of tests/openapi/run.sh through the admin API: an environment with
features of each kind, a segment override and an identity override; prints a server-side key."""
import json
import sys
import time
import urllib.request

base, admin_key = sys.argv[1], sys.argv[2]


def call(method, path, body=None):
    req = urllib.request.Request(
        f"{base}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Api-Key {admin_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


org = call("POST", "/organisations/", {"name": "SDK check"})
project = call("POST", "/projects/", {"name": "SDK check", "organisation": org["id"]})
env = call("POST", "/environments/", {"name": "Production", "project": project["id"]})
key = env["api_key"]
call("POST", f"/projects/{project['id']}/features/",
     {"name": "banner", "initial_value": "blue", "default_enabled": True})
numeric = call("POST", f"/projects/{project['id']}/features/",
               {"name": "limit", "initial_value": 42, "default_enabled": True})
call("POST", f"/projects/{project['id']}/features/",
     {"name": "checkout", "initial_value": "control", "default_enabled": True,
      "multivariate_options": [{"value": "variant-a", "default_percentage_allocation": 30}]})
segment = call("POST", f"/projects/{project['id']}/segments/", {"name": "beta", "rules": [
    {"type": "ALL", "rules": [{"type": "ANY", "conditions": [
        {"property": "plan", "operator": "EQUAL", "value": "beta"}]}]}]})
call("POST", f"/environments/{key}/features/{numeric['id']}/create-segment-override/",
     {"segment": segment["id"], "enabled": True, "feature_state_value": 7})
identity = call("POST", f"/environments/{key}/identities/", {"identifier": "vip"})
call("POST", f"/environments/{key}/identities/{identity['id']}/featurestates/",
     {"feature": numeric["id"], "enabled": False, "feature_state_value": 0})
server_key = call("POST", f"/environments/{key}/api-keys/", {"name": "sdk check"})["key"]
# Wait until the edge serves the environment with every feature.
for _ in range(200):
    req = urllib.request.Request(f"{base}/api/v1/flags/", headers={"X-Environment-Key": key})
    try:
        with urllib.request.urlopen(req) as r:
            if len(json.loads(r.read())) == 3:
                break
    except OSError:
        pass
    time.sleep(0.05)
print(server_key)
