# Environment for running Airflow from this repository (sourced, not executed).
# Everything points inside the repository; nothing is written outside it.
_SRE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-${_SRE_ROOT}/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${_SRE_ROOT}/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="${_SRE_ROOT}/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES="False"
export AIRFLOW__CORE__LAZY_LOAD_PLUGINS="False"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///${AIRFLOW_HOME}/airflow.db}"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="${AIRFLOW_HOME}/logs"
# Platform records: a SQLite file in the Airflow home unless a connection is given.
export AIRFLOW_CONN_SRE_RECORDS="${AIRFLOW_CONN_SRE_RECORDS:-sqlite://${AIRFLOW_HOME}/records.db}"
# Named users of the embedded simple auth manager (passwords are generated on first start into
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated); roles as the names say.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,release-manager:op,developer:user,viewer:viewer}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-False}"
# Operators that wait on something outside Airflow defer by default.
export AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="${AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE:-True}"
export PATH="${_SRE_ROOT}/.venv/bin:${PATH}"
unset _SRE_ROOT
