"""Roles and users, inside Superset's app context: run by ``safeguard superset up`` with
Superset's own Python (src/safeguard/superset/server.py, ``SupersetServer.bootstrap``).

The spec comes in ``SAFEGUARD_SUPERSET_ACCESS`` (from src/safeguard/superset/access.py) and
each password in the variable it names: passwords travel in the environment, not on a
command line other users could read with ``ps``.
"""
import json
import os
from superset.app import create_app

app = create_app()
with app.app_context():
    from superset import db, security_manager as sm

    spec = json.loads(os.environ["SAFEGUARD_SUPERSET_ACCESS"])
    missing = []
    for name, pairs in spec["roles"].items():
        pvms = []
        for permission, view in pairs:
            pvm = sm.find_permission_view_menu(permission, view)
            if pvm is None:
                missing.append(f"{permission} on {view} (role {name})")
            else:
                pvms.append(pvm)
        if missing:
            continue
        role = sm.add_role(name)  # the existing role, if there is one
        granted = [p for p in role.permissions if p.permission.name == "database_access"]
        role.permissions = pvms + granted
        print(f"role {name}: {len(pvms)} permissions, {len(granted)} database grants kept")
    if missing:
        db.session.rollback()
        raise SystemExit("This Superset has no such permission (renamed in an upgrade?): "
                         + "; ".join(missing)
                         + ". Update src/safeguard/superset/access.py.")
    public = sm.find_role(app.config["AUTH_ROLE_PUBLIC"])
    if public is not None and public.permissions:
        print(f"role {public.name}: {len(public.permissions)} permissions removed")
        public.permissions = []
    db.session.commit()

    for spec_user in spec["users"]:
        username, role = spec_user["username"], sm.find_role(spec_user["role"])
        password = os.environ[spec_user["password_env"]]
        user = sm.find_user(username=username)
        if user is None:
            if not sm.add_user(username, "Safeguard", role.name,
                               f"{username}@safeguard.invalid", [role], password=password):
                raise SystemExit(f"could not create the Superset user {username!r}")
            print(f"created Superset user {username!r} ({role.name})")
        else:
            user.roles = [role]
            user.active = True
            sm.update_user(user)
            sm.reset_password(user.id, password)
            print(f"Superset user {username!r} exists; role {role.name}, password synchronised")
