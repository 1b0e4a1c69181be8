# shellcheck shell=bash
# Helpers for deploy.sh: the flat YAML config, its validation, and printing
# commands with every known secret value masked. Sourced, never run.

# Config values by key, and the keys in file order (the env file keeps it).
declare -gA CFG=()
declare -ga CFG_KEYS=()
# Secret values this run knows; every printed line has them replaced by ****.
declare -ga MASK_VALUES=()
# 1: print every command, run none.
DRY_RUN=${DRY_RUN:-0}

# The variables that may name a secret. The deploy accepts only Secret Manager
# references for them so no secret value ever lands in a function's config.
# COOKIE_SECRET is the original's name for SIGNING_KEY.
SECRET_VARS=(ADMIN_KEY PROXY_KEY SIGNING_KEY COOKIE_SECRET FIREBASE_KEY
	OPENAI_KEY ANTHROPIC_KEY GOOGLE_AI_KEY MISTRAL_AI_KEY GCP_CREDENTIALS
	AWS_CREDENTIALS AZURE_CREDENTIALS)

# The application's variables: config.Names() but those the deploy or the
# platform sets, TOKEN_QUOTA_* and TOKEN_COST_* by pattern (is_app_var);
# TestAppVarsAreTheVariablesConfigReads keeps them equal. Others draw a
# typo warning.
APP_VARS=(GATEKEEPER GATEKEEPER_STORE PROXY_KEY ADMIN_KEY ADMIN_WHITELIST
	IP_BLACKLIST TRUSTED_PROXIES FIREBASE_RTDB_URL FIREBASE_KEY
	FIREBASE_USERS_REF_NAME MAX_IPS_PER_USER MAX_IPS_AUTO_BAN
	QUOTA_REFRESH_PERIOD TEXT_MODEL_RATE_LIMIT IMAGE_MODEL_RATE_LIMIT
	USER_CONCURRENCY_LIMIT ALLOWED_MODEL_FAMILIES MAX_OUTPUT_TOKENS_OPENAI
	MAX_OUTPUT_TOKENS_ANTHROPIC MAX_OUTPUT_TOKENS_GOOGLE_AI
	MAX_OUTPUT_TOKENS_MISTRAL_AI OPENAI_KEY ANTHROPIC_KEY GOOGLE_AI_KEY
	MISTRAL_AI_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL GOOGLE_AI_BASE_URL
	MISTRAL_AI_BASE_URL SIGNING_KEY ERROR_FORMAT USER_CACHE_TTL LOG_LEVEL
	GCP_CREDENTIALS GCP_REGION GCP_VERTEX_BASE_URL MAX_OUTPUT_TOKENS_GCP
	AWS_CREDENTIALS AWS_BEDROCK_BASE_URL MAX_OUTPUT_TOKENS_AWS AZURE_CREDENTIALS
	AZURE_OPENAI_BASE_URL AZURE_OPENAI_API_VERSION MAX_OUTPUT_TOKENS_AZURE
	ALLOWED_VISION_SERVICES ALLOW_AWS_LOGGING ALLOW_IMAGE_PROMPTS
	ALLOW_NICKNAME_CHANGES ALLOW_OPENAI_TOOL_USAGE ALLOW_PAID_FEATURES
	BLOCKED_ORIGINS BLOCK_MESSAGE
	BLOCK_REDIRECT CAPTCHA_MODE CHECK_KEYS COOKIE_SECRET EVENT_LOGGING
	EVENT_LOGGING_TRIM EVENT_RETENTION_DAYS LIMITS_SCOPE BODY_MEMORY_LIMIT_MB
	MAX_CONTEXT_TOKENS_ANTHROPIC MAX_CONTEXT_TOKENS_OPENAI MAX_OUTPUT_TOKENS
	MODEL_RATE_LIMIT POW_CHALLENGE_TIMEOUT POW_DIFFICULTY_LEVEL
	POW_MAX_TOKENS_PER_IP POW_TOKEN_HOURS POW_TOKEN_MAX_IPS
	POW_TOKEN_MAX_REFRESHES POW_TOKEN_PURGE_HOURS PROMPT_LOGGING
	PROXY_ENDPOINT_ROUTE QUOTA_REFRESH_TZ REJECT_MESSAGE REJECT_PHRASES
	SERVICE_INFO_PASSWORD SHOW_RECENT_IMAGES SHOW_TOKEN_COSTS SQLITE_DATA_PATH
	STATIC_SERVICE_INFO USE_INSECURE_COOKIES)

# Deployment settings with their defaults; "" means required or optional-empty.
declare -gA DEPLOY_DEFAULTS=(
	[DEPLOY_PROJECT]=""
	[DEPLOY_REGION]="us-central1"
	[DEPLOY_SERVICE_ACCOUNT]="tollgate-functions"
	[DEPLOY_BUILD_SERVICE_ACCOUNT]=""
	[DEPLOY_ENABLE_APIS]="true"
	[DEPLOY_PROXY_PUBLIC]="true"
	[DEPLOY_ADMIN_PUBLIC]="true"
	[DEPLOY_MEMORY]="512Mi"
	[DEPLOY_CPU]="1"
	[DEPLOY_CONCURRENCY]="80"
	[DEPLOY_MIN_INSTANCES]="0"
	[DEPLOY_PROXY_TIMEOUT]="3600"
	[DEPLOY_PROXY_MAX_INSTANCES]="10"
	[DEPLOY_ADMIN_TIMEOUT]="300"
	[DEPLOY_ADMIN_MAX_INSTANCES]="2"
	[DEPLOY_SCHEDULER]="true"
	[DEPLOY_SCHEDULER_LOCATION]=""
	[DEPLOY_SCHEDULER_SCHEDULE]="0 * * * *"
	[DEPLOY_SCHEDULER_TIME_ZONE]="Etc/UTC"
	[DEPLOY_SCHEDULER_ACTIONS]="expire-temporary,purge-temporary"
	[DEPLOY_SCHEDULER_SERVICE_ACCOUNT]="tollgate-scheduler"
)

# Set by the deploy from DEPLOY_SCHEDULER_*, never by hand.
SCHEDULER_VARS=(SCHEDULER_SERVICE_ACCOUNT SCHEDULER_AUDIENCE SCHEDULER_CERTS_URL)

# The maintenance actions DEPLOY_SCHEDULER_ACTIONS may schedule: those meant
# to run on a schedule (users.ScheduledActions; reset-counts and
# expire-all-temporary are an administrator's decision, run by hand).
SCHEDULABLE_ACTIONS=(expire-temporary purge-temporary refresh-quotas prune-events prune-limits)

die() {
	printf 'deploy: error: %s\n' "$*" >&2
	exit 1
}

warn() { printf 'deploy: warning: %s\n' "$*" >&2; }

# note prints a comment line into the command listing.
note() { printf '# %s\n' "$*"; }

# mask TEXT: TEXT with every known secret value replaced by ****.
mask() {
	local text=$1 v
	for v in "${MASK_VALUES[@]}"; do
		if [[ -n $v ]]; then
			text=${text//"$v"/****}
		fi
	done
	printf '%s' "$text"
}

# shell_quote ARG: ARG as a POSIX shell word, bare when that is safe.
shell_quote() {
	local a=$1 q="'\\''"
	if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
		printf '%s' "$a"
	else
		printf "'%s'" "${a//\'/$q}"
	fi
}

# join_cmd ARGS...: one copy-pasteable command line.
join_cmd() {
	local out="" a
	for a in "$@"; do
		out+="${out:+ }$(shell_quote "$a")"
	done
	printf '%s' "$out"
}

print_cmd() { printf '%s\n' "$(mask "$(join_cmd "$@")")"; }

# run CMD...: print the command; run it unless this is a dry run.
run() {
	print_cmd "$@"
	if ((DRY_RUN)); then
		return 0
	fi
	"$@"
}

# run_retry CMD...: like run, retried with backoff; IAM grants to a service
# account created moments ago fail until the account has propagated.
run_retry() {
	local try
	print_cmd "$@"
	if ((DRY_RUN)); then
		return 0
	fi
	for try in 1 2 3 4; do
		if "$@"; then
			return 0
		fi
		warn "attempt $try failed; retrying in $((try * 10))s"
		sleep $((try * 10))
	done
	"$@"
}

# run_stdin VALUE CMD...: like run, with VALUE on the command's standard input,
# so a secret never appears in a process's arguments.
run_stdin() {
	local value=$1
	shift
	printf "printf '%%s' '****' | %s\n" "$(mask "$(join_cmd "$@")")"
	if ((DRY_RUN)); then
		return 0
	fi
	printf '%s' "$value" | "$@"
}

# probe CMD...: print the command; true when it succeeds. A dry run cannot
# know, so it answers false and the caller prints the "missing" branch.
probe() {
	printf '%s  # exists?\n' "$(mask "$(join_cmd "$@")")"
	if ((DRY_RUN)); then
		return 1
	fi
	"$@" >/dev/null 2>&1
}

# capture VAR PLACEHOLDER CMD...: print the command and store its output in
# VAR; a dry run stores PLACEHOLDER instead.
capture() {
	local var=$1 value=$2
	shift 2
	print_cmd "$@"
	if ((!DRY_RUN)); then
		value=$("$@")
	fi
	printf -v "$var" '%s' "$value"
}

# show_file PATH: print the file as the heredoc that would recreate it.
show_file() {
	printf "cat > %s <<'EOF'\n%s\nEOF\n" "$(shell_quote "$1")" "$(mask "$(<"$1")")"
}

# yaml_quote VALUE: VALUE as a YAML double-quoted scalar.
yaml_quote() {
	local v=$1
	v=${v//\\/\\\\}
	v=${v//\"/\\\"}
	printf '"%s"' "$v"
}

# cfg_unquote VALUE LINE_NO: the scalar a flat YAML value denotes, in REPLY.
cfg_unquote() {
	local raw=$1 n=$2 re_dq='^"(([^"\\]|\\["\\])*)"[[:space:]]*(#.*)?$'
	local re_sq="^'(([^']|'')*)'[[:space:]]*(#.*)?\$"
	if [[ $raw == \"* ]]; then
		[[ $raw =~ $re_dq ]] || die "line $n: bad double-quoted value (only \\\" and \\\\ escapes are supported)"
		REPLY=${BASH_REMATCH[1]}
		REPLY=${REPLY//\\\"/\"}
		REPLY=${REPLY//\\\\/\\}
	elif [[ $raw == \'* ]]; then
		[[ $raw =~ $re_sq ]] || die "line $n: bad single-quoted value"
		REPLY=${BASH_REMATCH[1]}
		REPLY=${REPLY//\'\'/\'}
	else
		# A plain YAML scalar: a comment starts at " #"; indicator characters
		# would mean something else to YAML, so they must be quoted.
		REPLY=${raw%%[[:space:]]#*}
		REPLY=${REPLY%"${REPLY##*[![:space:]]}"}
		local re_ind='^[][{}&*!|>%@`#,]' re_ind2='^[-?:]([[:space:]]|$)'
		if [[ $REPLY =~ $re_ind || $REPLY =~ $re_ind2 || $REPLY == *': '* ]]; then
			die "line $n: quote this value (\"...\"): it starts with or holds a YAML special character"
		fi
	fi
}

# cfg_load FILE: read flat "KEY: value" lines into CFG and CFG_KEYS.
cfg_load() {
	local file=$1 line n=0 key re='^([A-Z][A-Z0-9_]*):([[:space:]]+(.*))?$'
	[[ -f $file && -r $file ]] || die "config file not found: $file (copy deploy/env.example.yaml to deploy/env.yaml)"
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		line=${line%$'\r'}
		if [[ $line =~ ^[[:space:]]*(#.*)?$ ]]; then
			continue
		fi
		[[ $line =~ $re ]] || die "$file line $n: expected 'KEY: value' with an upper-case KEY at the start of the line"
		key=${BASH_REMATCH[1]}
		[[ -z ${CFG[$key]+set} ]] || die "$file line $n: $key is set twice"
		cfg_unquote "${BASH_REMATCH[3]}" "$n"
		CFG[$key]=$REPLY
		CFG_KEYS+=("$key")
	done <"$file"
}

is_one_of() {
	local want=$1 v
	shift
	for v in "$@"; do
		[[ $v == "$want" ]] && return 0
	done
	return 1
}

# is_secret_ref VALUE: a Secret Manager reference the application resolves.
is_secret_ref() {
	[[ $1 =~ ^sm://[A-Za-z0-9_-]{1,255}$ ||
		$1 =~ ^projects/[a-z0-9.:-]+/secrets/[A-Za-z0-9_-]{1,255}/versions/([0-9]+|latest)$ ]]
}

need_uint() {
	[[ ${CFG[$1]} =~ ^(0|[1-9][0-9]{0,8})$ ]] || die "$1 must be a whole number (got '${CFG[$1]}')"
}

need_bool() {
	is_one_of "${CFG[$1]}" true false || die "$1 must be true or false (got '${CFG[$1]}')"
}

# cfg_validate: fill deploy defaults and refuse what gcloud or the app would.
cfg_validate() {
	local key v
	for key in "${CFG_KEYS[@]}"; do
		if [[ $key == DEPLOY_* ]]; then
			[[ -n ${DEPLOY_DEFAULTS[$key]+set} ]] || die "unknown deploy setting $key"
		elif [[ $key == GOOGLE_CLOUD_PROJECT || $key == K_* || $key == PORT || $key == FUNCTION_TARGET ]] ||
			is_one_of "$key" "${SCHEDULER_VARS[@]}"; then
			die "$key is set by the deploy or the platform; remove it from the config"
		elif ! is_app_var "$key"; then
			warn "$key is not a tollgate variable (typo?); passing it on anyway"
		fi
	done
	for key in "${!DEPLOY_DEFAULTS[@]}"; do
		if [[ -z ${CFG[$key]:-} ]]; then
			CFG[$key]=${DEPLOY_DEFAULTS[$key]}
		fi
	done
	[[ -n ${CFG[DEPLOY_SCHEDULER_LOCATION]} ]] || CFG[DEPLOY_SCHEDULER_LOCATION]=${CFG[DEPLOY_REGION]}

	[[ -n ${CFG[DEPLOY_PROJECT]} ]] || die "DEPLOY_PROJECT is required (your Google Cloud project ID)"
	[[ ${CFG[DEPLOY_PROJECT]} =~ ^[a-z][a-z0-9:.-]{4,61}[a-z0-9]$ ]] || die "DEPLOY_PROJECT '${CFG[DEPLOY_PROJECT]}' is not a project ID"
	[[ ${CFG[DEPLOY_REGION]} =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "DEPLOY_REGION '${CFG[DEPLOY_REGION]}' is not a region such as us-central1"
	[[ ${CFG[DEPLOY_SCHEDULER_LOCATION]} =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "DEPLOY_SCHEDULER_LOCATION '${CFG[DEPLOY_SCHEDULER_LOCATION]}' is not a region"
	v=${CFG[DEPLOY_SERVICE_ACCOUNT]}
	[[ $v =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ || $v =~ ^[^@[:space:]]+@[^@[:space:]]+$ ]] ||
		die "DEPLOY_SERVICE_ACCOUNT must be an account name (6-30 of a-z 0-9 -) or an email"
	v=${CFG[DEPLOY_SCHEDULER_SERVICE_ACCOUNT]}
	[[ $v =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ || $v =~ ^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.gserviceaccount\.com$ ]] ||
		die "DEPLOY_SCHEDULER_SERVICE_ACCOUNT must be an account name (6-30 of a-z 0-9 -) or a service account's email"
	for key in DEPLOY_ENABLE_APIS DEPLOY_PROXY_PUBLIC DEPLOY_ADMIN_PUBLIC DEPLOY_SCHEDULER; do
		need_bool "$key"
	done
	for key in DEPLOY_CONCURRENCY DEPLOY_MIN_INSTANCES DEPLOY_PROXY_TIMEOUT DEPLOY_PROXY_MAX_INSTANCES \
		DEPLOY_ADMIN_TIMEOUT DEPLOY_ADMIN_MAX_INSTANCES; do
		need_uint "$key"
	done
	for key in DEPLOY_PROXY_TIMEOUT DEPLOY_ADMIN_TIMEOUT; do
		((CFG[$key] >= 1 && CFG[$key] <= 3600)) || die "$key must be 1..3600 seconds (the 2nd gen HTTP maximum)"
	done
	((CFG[DEPLOY_CONCURRENCY] >= 1 && CFG[DEPLOY_CONCURRENCY] <= 1000)) || die "DEPLOY_CONCURRENCY must be 1..1000"
	[[ ${CFG[DEPLOY_MEMORY]} =~ ^[0-9]+(Mi|Gi|M|G)$ ]] || die "DEPLOY_MEMORY must look like 512Mi or 1Gi"
	[[ ${CFG[DEPLOY_CPU]} =~ ^([0-9]+)(\.[0-9]+)?$ ]] || die "DEPLOY_CPU must be a number of vCPUs such as 1"
	# 2nd gen refuses concurrency above 1 on less than one vCPU.
	if ((CFG[DEPLOY_CONCURRENCY] > 1 && BASH_REMATCH[1] < 1)); then
		die "DEPLOY_CONCURRENCY above 1 needs DEPLOY_CPU of at least 1"
	fi
	[[ ${CFG[DEPLOY_SCHEDULER_SCHEDULE]} =~ ^[^[:space:]]+([[:space:]]+[^[:space:]]+){4}$ ]] ||
		die "DEPLOY_SCHEDULER_SCHEDULE must be a 5-field cron expression"
	local -a actions
	IFS=, read -r -a actions <<<"${CFG[DEPLOY_SCHEDULER_ACTIONS]}"
	for v in "${actions[@]}"; do
		is_one_of "$v" "${SCHEDULABLE_ACTIONS[@]}" ||
			die "DEPLOY_SCHEDULER_ACTIONS: '$v' is not one of ${SCHEDULABLE_ACTIONS[*]}"
	done

	for key in "${SECRET_VARS[@]}"; do
		v=${CFG[$key]:-}
		if [[ -n $v ]] && ! is_secret_ref "$v" && ! is_own_identity "$key"; then
			# Never echo the value: it may be the secret itself.
			die "$key must be a Secret Manager reference (sm://NAME or projects/P/secrets/S/versions/V), not a value; give the value through ${key}_FILE or the prompt"
		fi
	done
	v=${CFG[GATEKEEPER]:-none}
	is_one_of "$v" none proxy_key user_token || die "GATEKEEPER must be none, proxy_key or user_token"
	if [[ $v == proxy_key && -z ${CFG[PROXY_KEY]:-} ]]; then
		die "GATEKEEPER=proxy_key needs PROXY_KEY (sm://...)"
	fi
	if [[ $v == user_token && -z ${CFG[ADMIN_KEY]:-} ]]; then
		die "GATEKEEPER=user_token needs ADMIN_KEY (sm://...)"
	fi
	v=$(effective_store)
	is_one_of "$v" memory firebase_rtdb || die "GATEKEEPER_STORE must be memory or firebase_rtdb"
	if [[ $v == firebase_rtdb && -z ${CFG[FIREBASE_RTDB_URL]:-} ]]; then
		die "the firebase_rtdb store (the default on Cloud Functions) needs FIREBASE_RTDB_URL; set GATEKEEPER_STORE: memory for a throwaway trial"
	fi
	if [[ $v == memory ]]; then
		warn "GATEKEEPER_STORE=memory: every instance keeps its own users and loses them when it stops; use it for trials only"
	fi
}

# is_app_var KEY: KEY is a variable the application reads.
is_app_var() { is_one_of "$1" "${APP_VARS[@]}" || [[ $1 =~ ^TOKEN_(QUOTA|COST)_[A-Z0-9_]+$ ]]; }

# may_generate VAR: a random value may stand for VAR's secret
# (--generate-secrets, an empty answer at the prompt).
may_generate() { is_one_of "$1" ADMIN_KEY PROXY_KEY SIGNING_KEY COOKIE_SECRET; }

# is_own_identity VAR: VAR names the functions' own identity (GCP_CREDENTIALS:
# adc, Vertex AI through Application Default Credentials): no secret at all.
is_own_identity() { [[ $1 == GCP_CREDENTIALS && ${CFG[$1]:-} == adc ]]; }

# effective_store: the store the functions will use (SPEC §2 default on GCP).
effective_store() { printf '%s' "${CFG[GATEKEEPER_STORE]:-firebase_rtdb}"; }

# service_account_email: the functions' runtime identity.
service_account_email() {
	local sa=${CFG[DEPLOY_SERVICE_ACCOUNT]}
	if [[ $sa == *@* ]]; then
		printf '%s' "$sa"
	else
		printf '%s@%s.iam.gserviceaccount.com' "$sa" "${CFG[DEPLOY_PROJECT]}"
	fi
}

# scheduler_account_email: the identity of the scheduler's OIDC tokens.
scheduler_account_email() {
	local sa=${CFG[DEPLOY_SCHEDULER_SERVICE_ACCOUNT]}
	if [[ $sa == *@* ]]; then
		printf '%s' "$sa"
	else
		printf '%s@%s.iam.gserviceaccount.com' "$sa" "${CFG[DEPLOY_PROJECT]}"
	fi
}

# scheduler_audience: the audience of the scheduler's tokens, the admin
# function's URL (2nd gen functions keep the cloudfunctions.net address).
scheduler_audience() {
	printf 'https://%s-%s.cloudfunctions.net/admin' "${CFG[DEPLOY_REGION]}" "${CFG[DEPLOY_PROJECT]}"
}

# go_mem_limit: GOMEMLIMIT for DEPLOY_MEMORY (512Mi, 1Gi, 2G, …): 85% of
# the instance's memory, in MiB. Go's collector then works harder as the
# heap nears the instance's limit instead of letting garbage grow past it,
# and the proxy's memory budget for bodies is half of it.
go_mem_limit() {
	local mem=${CFG[DEPLOY_MEMORY]} n mib
	n=${mem%%[!0-9]*}
	case ${mem#"$n"} in
	Mi) mib=$n ;;
	Gi) mib=$((n * 1024)) ;;
	M) mib=$((n * 1000000 / 1048576)) ;;
	G) mib=$((n * 1000000000 / 1048576)) ;;
	esac
	printf '%dMiB' $((mib * 85 / 100))
}

# write_env_file PATH: the functions' environment as a YAML map. A file, not
# --set-env-vars, because values hold commas, spaces and '*' (whitelists, cron
# periods) that no single gcloud list delimiter is guaranteed to avoid.
write_env_file() {
	local path=$1 key
	{
		printf 'GOOGLE_CLOUD_PROJECT: %s\n' "$(yaml_quote "${CFG[DEPLOY_PROJECT]}")"
		printf 'GOMEMLIMIT: %s\n' "$(yaml_quote "$(go_mem_limit)")"
		for key in "${CFG_KEYS[@]}"; do
			[[ $key == DEPLOY_* || -z ${CFG[$key]} ]] && continue
			printf '%s: %s\n' "$key" "$(yaml_quote "${CFG[$key]}")"
		done
		if [[ ${CFG[DEPLOY_SCHEDULER]} == true ]]; then
			printf 'SCHEDULER_SERVICE_ACCOUNT: %s\n' "$(yaml_quote "$(scheduler_account_email)")"
			printf 'SCHEDULER_AUDIENCE: %s\n' "$(yaml_quote "$(scheduler_audience)")"
		fi
	} >"$path"
}
