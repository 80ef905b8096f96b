#!/usr/bin/env bash
# Writes the kind overlay's credentials into its untracked generated/
# folder, once: a random admin token and random MongoDB, Redis and Grafana
# passwords. Kept on later runs (DBAAS_ROTATE=1 makes new ones). Nothing
# here is committed; the overlay's secretGenerator reads these files.
#
#   credentials.sh OVERLAY_DIR      (k8s/scripts/deploy.sh calls it)
set -euo pipefail
overlay=${1:?usage: credentials.sh OVERLAY_DIR}
gen=$overlay/generated
creds=$gen/credentials.env
[[ -s $creds && -s $gen/mongodb-root.env && -s $gen/grafana-admin.env && ${DBAAS_ROTATE:-0} != 1 ]] && exit 0
mkdir -p "$gen"
chmod 700 "$gen"
umask 077
rand() { openssl rand -hex "${1:-24}"; }
mongo_pw=$(rand) redis_pw=$(rand)
# Each file is written beside and renamed into place, so a reader never
# sees half of one.
cat >"$creds.$$" <<EOT
mongodb-uri=mongodb://dbaas:$mongo_pw@mongodb.dbaas.svc.cluster.local:27017/?authSource=admin
redis-url=redis://:$redis_pw@redis.dbaas.svc.cluster.local:6379/0
redis-password=$redis_pw
admin-token=$(rand 32)
EOT
printf 'username=dbaas\npassword=%s\n' "$mongo_pw" >"$gen/mongodb-root.env.$$"
printf 'password=%s\n' "$(rand)" >"$gen/grafana-admin.env.$$"
mv "$gen/mongodb-root.env.$$" "$gen/mongodb-root.env"
mv "$gen/grafana-admin.env.$$" "$gen/grafana-admin.env"
mv "$creds.$$" "$creds"
printf '[deploy] generated credentials in %s (untracked)\n' "$gen" >&2
