{{/*
Templates of the in-cluster backup CronJob live in this folder (values key `backup`).
"conduit.database.libpqEnv" (templates/_secrets.tpl) gives a container the PG* environment of the
application database, with the password from its Secret.
*/}}
