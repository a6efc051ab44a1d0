-- Defence: `passerelle audit --login` and the ban refresh read these often.
CREATE INDEX audit_events_login_at ON audit_events(login, at);
CREATE INDEX bans_expires_at ON bans(expires_at);
