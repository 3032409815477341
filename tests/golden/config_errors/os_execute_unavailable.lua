nick = os.getenv("DCLUA_SURELY_UNSET_VARIABLE") or "me"
os.execute("touch /tmp/dclua-config-was-here")
