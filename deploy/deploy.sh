#!/usr/bin/env bash
# deploy.sh: deploy tollgate's two Cloud Functions (proxy, admin) with their
# secrets, IAM grants and the maintenance scheduler job. Driven by one flat
# config file; see deploy/README.md. Safe to re-run: every step creates what
# is missing and updates what exists.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UPDATE_SECRETS=0
GENERATE_SECRETS=0
# 1 while asking for a new version of an existing secret (empty keeps it).
UPDATING=0
# Secret values learned in this run (files, prompt, generated), by variable.
declare -A SECRET_VALUE=()

usage() {
	cat <<'EOF'
Usage: deploy/deploy.sh [--config FILE] [--dry-run] [--update-secrets] [--generate-secrets]

  --config FILE       config to deploy (default: deploy/env.yaml)
  --dry-run           print every command, masked, and run none (gcloud not needed)
  --update-secrets    add a new version to secrets that already exist
                      (values from <VAR>_FILE or the prompt; empty answer keeps it)
  --generate-secrets  make up random values for ADMIN_KEY, PROXY_KEY and
                      SIGNING_KEY (or COOKIE_SECRET) when no <VAR>_FILE is given

Secret values never go in the config. A new secret's value comes from the file
named by <VAR>_FILE (for example ADMIN_KEY_FILE=~/keys/admin.txt), or from a
hidden prompt.
EOF
}

parse_args() {
	CONFIG=""
	while (($#)); do
		case $1 in
		--config) CONFIG=${2:?--config needs a file}; shift ;;
		--config=*) CONFIG=${1#--config=} ;;
		--dry-run) DRY_RUN=1 ;;
		--update-secrets) UPDATE_SECRETS=1 ;;
		--generate-secrets) GENERATE_SECRETS=1 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown argument: $1" ;;
		esac
		shift
	done
}

# random_secret: 32 random bytes, URL-safe base64.
random_secret() {
	head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# secret_value VAR NAME: the value for secret NAME (config variable VAR) in
# REPLY, from ${VAR}_FILE, generation, or a hidden prompt. A dry run never
# prompts. Returns 1 when the operator leaves an existing secret alone.
secret_value() {
	local var=$1 name=$2 file_var="${1}_FILE" file
	file=${!file_var:-}
	if [[ -n $file ]]; then
		[[ -f $file && -r $file ]] || die "$file_var: cannot read $file"
		REPLY=$(<"$file")
		REPLY=${REPLY%$'\r'}
		[[ -n $REPLY ]] || die "$file_var: $file is empty"
		note "value of $name: from \$$file_var"
	elif ((GENERATE_SECRETS)) && may_generate "$var"; then
		REPLY=$(random_secret)
		note "value of $name: generated (read it later with: gcloud secrets versions access latest --secret=$name --project=${CFG[DEPLOY_PROJECT]})"
	elif ((DRY_RUN)); then
		REPLY=""
		note "value of $name: asked at a hidden prompt (or set $file_var)"
		return 0
	elif ((UPDATING)) && [[ ! -t 0 ]]; then
		note "$name kept as it is (no $file_var, no terminal)"
		return 1
	elif [[ -t 0 ]]; then
		read -r -s -p "Value for $var (secret $name; input hidden, empty to $([[ $UPDATING == 1 ]] && echo keep it || echo generate or stop)): " REPLY
		printf '\n' >&2
		if [[ -z $REPLY && $UPDATING == 1 ]]; then
			return 1
		fi
		if [[ -z $REPLY ]]; then
			may_generate "$var" || die "$var: a value is required for new secret $name"
			REPLY=$(random_secret)
			note "value of $name: generated (read it later with: gcloud secrets versions access latest --secret=$name --project=${CFG[DEPLOY_PROJECT]})"
		fi
	else
		die "$var: no value for secret $name: set $file_var=/path/to/file, run interactively, or use --generate-secrets"
	fi
	MASK_VALUES+=("$REPLY")
	SECRET_VALUE[$var]=$REPLY
}

step_enable_apis() {
	note "Enable the APIs the deployment uses."
	if [[ ${CFG[DEPLOY_ENABLE_APIS]} != true ]]; then
		note "skipped (DEPLOY_ENABLE_APIS: false)"
		return 0
	fi
	local -a vertex=()
	if is_own_identity GCP_CREDENTIALS; then
		vertex=(aiplatform.googleapis.com)
	fi
	run gcloud services enable cloudfunctions.googleapis.com run.googleapis.com \
		cloudbuild.googleapis.com artifactregistry.googleapis.com \
		secretmanager.googleapis.com cloudscheduler.googleapis.com \
		firebasedatabase.googleapis.com iam.googleapis.com logging.googleapis.com \
		"${vertex[@]}" --project="$PROJECT"
}

step_service_account() {
	note "The functions' runtime identity: $SA_EMAIL"
	if [[ ${CFG[DEPLOY_SERVICE_ACCOUNT]} == *@* ]]; then
		note "using the existing account named in DEPLOY_SERVICE_ACCOUNT"
		return 0
	fi
	if probe gcloud iam service-accounts describe "$SA_EMAIL" --project="$PROJECT"; then
		return 0
	fi
	note "if missing:"
	run gcloud iam service-accounts create "${CFG[DEPLOY_SERVICE_ACCOUNT]}" \
		--project="$PROJECT" --display-name="tollgate functions"
}

step_database_role() {
	if [[ $(effective_store) != firebase_rtdb ]]; then
		note "No Realtime Database role: the store is $(effective_store)."
		return 0
	fi
	# The Admin SDK authenticates as the service account (Application Default
	# Credentials) and bypasses the deny-all client rules.
	note "Let the functions read and write the Realtime Database."
	run_retry gcloud projects add-iam-policy-binding "$PROJECT" \
		--member="serviceAccount:$SA_EMAIL" --role=roles/firebasedatabase.admin \
		--condition=None --format=none
}

step_vertex_role() {
	if ! is_own_identity GCP_CREDENTIALS; then
		return 0
	fi
	# GCP_CREDENTIALS: adc: Vertex AI is called as the functions' own
	# account (Application Default Credentials); no key exists anywhere.
	note "Let the functions call Vertex AI (Claude, Gemini) in $PROJECT as themselves."
	run_retry gcloud projects add-iam-policy-binding "$PROJECT" \
		--member="serviceAccount:$SA_EMAIL" --role=roles/aiplatform.user \
		--condition=None --format=none
}

# ensure_secret VAR NAME: create secret NAME if missing (or add a version).
ensure_secret() {
	local var=$1 name=$2
	UPDATING=0
	if probe gcloud secrets describe "$name" --project="$PROJECT"; then
		if ((UPDATE_SECRETS)); then
			UPDATING=1
			if secret_value "$var" "$name"; then
				run_stdin "${SECRET_VALUE[$var]}" gcloud secrets versions add "$name" \
					--project="$PROJECT" --data-file=-
			fi
		fi
		return 0
	fi
	note "if missing:"
	secret_value "$var" "$name"
	run_stdin "${SECRET_VALUE[$var]:-}" gcloud secrets create "$name" --project="$PROJECT" \
		--replication-policy=automatic --data-file=-
	if ((DRY_RUN && UPDATE_SECRETS)); then
		note "if present (--update-secrets):"
		run_stdin "${SECRET_VALUE[$var]:-}" gcloud secrets versions add "$name" \
			--project="$PROJECT" --data-file=-
	fi
}

step_secrets() {
	local var ref name secret_project
	for var in "${SECRET_VARS[@]}"; do
		ref=${CFG[$var]:-}
		[[ -n $ref ]] || continue
		is_own_identity "$var" && continue
		note "Secret for $var: $ref"
		if [[ $ref == sm://* ]]; then
			name=${ref#sm://}
			secret_project=$PROJECT
			ensure_secret "$var" "$name"
		else
			# projects/P/secrets/S/versions/V names an existing version.
			secret_project=${ref#projects/}
			secret_project=${secret_project%%/*}
			name=${ref#*/secrets/}
			name=${name%%/*}
			note "pinned version: not created here"
		fi
		run_retry gcloud secrets add-iam-policy-binding "$name" --project="$secret_project" \
			--member="serviceAccount:$SA_EMAIL" --role=roles/secretmanager.secretAccessor \
			--format=none
	done
}

# step_deploy NAME PUBLIC TIMEOUT MAX_INSTANCES: one 2nd gen HTTP function
# whose entry point is its name.
step_deploy() {
	local fn=$1 public=$2 timeout=$3 max=$4
	local -a cmd=(gcloud functions deploy "$fn" --gen2 --project="$PROJECT"
		--region="$REGION" --runtime=go126 --entry-point="$fn" --trigger-http
		--source=. --service-account="$SA_EMAIL" --memory="${CFG[DEPLOY_MEMORY]}"
		--cpu="${CFG[DEPLOY_CPU]}" --concurrency="${CFG[DEPLOY_CONCURRENCY]}"
		--timeout="${timeout}s" --min-instances="${CFG[DEPLOY_MIN_INSTANCES]}"
		--max-instances="$max" --env-vars-file="$ENV_FILE")
	if [[ -n ${CFG[DEPLOY_BUILD_SERVICE_ACCOUNT]} ]]; then
		cmd+=(--build-service-account="projects/$PROJECT/serviceAccounts/${CFG[DEPLOY_BUILD_SERVICE_ACCOUNT]}")
	fi
	if [[ $public == true ]]; then
		cmd+=(--allow-unauthenticated)
	else
		cmd+=(--no-allow-unauthenticated)
	fi
	note "Deploy function $fn (2nd gen, $( [[ $public == true ]] && echo public || echo IAM-only))."
	run "${cmd[@]}" --quiet
}

step_urls() {
	local predicted="https://$REGION-$PROJECT.cloudfunctions.net"
	note "Function URLs."
	capture PROXY_URL "$predicted/proxy" gcloud functions describe proxy --project="$PROJECT" \
		--region="$REGION" --format='value(url)'
	capture ADMIN_URL "$predicted/admin" gcloud functions describe admin --project="$PROJECT" \
		--region="$REGION" --format='value(url)'
	if ((DRY_RUN)); then
		note "dry run: URLs predicted as $PROXY_URL and $ADMIN_URL"
	fi
	[[ $PROXY_URL == https://* && $ADMIN_URL == https://* ]] ||
		die "could not read the functions' URLs (got '$PROXY_URL', '$ADMIN_URL')"
}

step_scheduler_account() {
	[[ ${CFG[DEPLOY_SCHEDULER]} == true ]] || return 0
	note "The scheduler's identity (its jobs call the admin function with an OIDC token, no admin key): $SCHED_EMAIL"
	if [[ ${CFG[DEPLOY_SCHEDULER_SERVICE_ACCOUNT]} == *@* ]]; then
		note "using the existing account named in DEPLOY_SCHEDULER_SERVICE_ACCOUNT"
		return 0
	fi
	if probe gcloud iam service-accounts describe "$SCHED_EMAIL" --project="$PROJECT"; then
		return 0
	fi
	note "if missing:"
	run gcloud iam service-accounts create "${CFG[DEPLOY_SCHEDULER_SERVICE_ACCOUNT]}" \
		--project="$PROJECT" --display-name="tollgate scheduler"
}

step_scheduler() {
	local action job uri
	local -a actions common
	note "Cloud Scheduler: maintenance of temporary users."
	if [[ ${CFG[DEPLOY_SCHEDULER]} != true ]]; then
		note "skipped (DEPLOY_SCHEDULER: false)"
		return 0
	fi
	note "Let the scheduler's account invoke the admin function (needed when it is IAM-only)."
	run_retry gcloud functions add-invoker-policy-binding admin --project="$PROJECT" \
		--region="$REGION" --member="serviceAccount:$SCHED_EMAIL" --format=none
	note "The jobs authenticate with a Google OIDC ID token for $SCHED_EMAIL, audience $SCHED_AUDIENCE;"
	note "the admin function accepts it on /maintenance/* only (SCHEDULER_SERVICE_ACCOUNT, SCHEDULER_AUDIENCE)."
	IFS=, read -r -a actions <<<"${CFG[DEPLOY_SCHEDULER_ACTIONS]}"
	for action in "${actions[@]}"; do
		job="tollgate-$action"
		uri="$ADMIN_URL/maintenance/$action"
		common=(--project="$PROJECT" --location="${CFG[DEPLOY_SCHEDULER_LOCATION]}"
			--schedule="${CFG[DEPLOY_SCHEDULER_SCHEDULE]}"
			--time-zone="${CFG[DEPLOY_SCHEDULER_TIME_ZONE]}" --uri="$uri"
			--http-method=post --attempt-deadline=180s --max-retry-attempts=3
			--oidc-service-account-email="$SCHED_EMAIL" --oidc-token-audience="$SCHED_AUDIENCE"
			--description="tollgate maintenance: $action")
		if probe gcloud scheduler jobs describe "$job" --project="$PROJECT" \
			--location="${CFG[DEPLOY_SCHEDULER_LOCATION]}"; then
			# --clear-headers drops the admin key older deployments put there.
			run gcloud scheduler jobs update http "$job" "${common[@]}" --clear-headers
			continue
		fi
		if ((DRY_RUN)); then
			note "if the job exists (--clear-headers drops an admin key older deployments put there):"
			print_cmd gcloud scheduler jobs update http "$job" "${common[@]}" --clear-headers
		fi
		note "if missing:"
		run gcloud scheduler jobs create http "$job" "${common[@]}"
	done
}

step_summary() {
	cat <<EOF
# Done.
#   proxy:     $PROXY_URL
#     OpenAI SDK base URL:     $PROXY_URL/openai/v1
#     Anthropic SDK base URL:  $PROXY_URL/anthropic
#     Google AI base URL:      $PROXY_URL/google-ai
#     Mistral SDK base URL:    $PROXY_URL/mistral-ai/v1
#     self-service page:       $PROXY_URL/user/lookup
#   admin UI:  $ADMIN_URL  (REST: $ADMIN_URL/users, OpenAPI: $ADMIN_URL/openapi.yaml)
#   Firebase Hosting (optional): firebase deploy --only hosting,database --project $PROJECT
EOF
}

main() {
	parse_args "$@"
	local root
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	cfg_load "${CONFIG:-$root/deploy/env.yaml}"
	cfg_validate
	if ((!DRY_RUN)) && ! command -v gcloud >/dev/null; then
		die "gcloud not found: install the Google Cloud CLI, or use --dry-run"
	fi
	PROJECT=${CFG[DEPLOY_PROJECT]}
	REGION=${CFG[DEPLOY_REGION]}
	SA_EMAIL=$(service_account_email)
	SCHED_EMAIL=$(scheduler_account_email)
	SCHED_AUDIENCE=$(scheduler_audience)
	PROXY_URL="" ADMIN_URL=""

	umask 077
	TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-deploy.XXXXXX")
	trap 'rm -rf "$TMP_DIR"' EXIT
	ENV_FILE="$TMP_DIR/env-vars.yaml"
	write_env_file "$ENV_FILE"
	# --source=. is the module root, where .gcloudignore trims the upload.
	cd "$root"

	note "tollgate deploy: project $PROJECT, region $REGION$( ((DRY_RUN)) && echo ', DRY RUN (nothing is run)')"
	note "run from the repository root"
	print_cmd cd "$root"
	step_enable_apis
	step_service_account
	step_scheduler_account
	step_database_role
	step_vertex_role
	step_secrets
	note "The functions' environment (Secret Manager references only, no values):"
	show_file "$ENV_FILE"
	step_deploy proxy "${CFG[DEPLOY_PROXY_PUBLIC]}" "${CFG[DEPLOY_PROXY_TIMEOUT]}" "${CFG[DEPLOY_PROXY_MAX_INSTANCES]}"
	step_deploy admin "${CFG[DEPLOY_ADMIN_PUBLIC]}" "${CFG[DEPLOY_ADMIN_TIMEOUT]}" "${CFG[DEPLOY_ADMIN_MAX_INSTANCES]}"
	step_urls
	step_scheduler
	step_summary
}

main "$@"
