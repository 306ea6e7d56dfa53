#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (/docker-entrypoint-initdb.d). POSTGRES_DB (Dagster's instance) is created by the image;
# this creates the sync ledger's database beside it. Safe to run again: it only creates the
# database when it is missing.
set -eu

: "${THRED_LEDGER_DB:?THRED_LEDGER_DB is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v ledger_db="$THRED_LEDGER_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'ledger_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'ledger_db')\gexec
SQL
