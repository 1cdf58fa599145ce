"""Numbered, forward-only migrations of the store's database (:mod:`.run` applies them).

The database's ``PRAGMA user_version`` says which migrations it has had. When the store opens a database
(:class:`hub.store.db.Store`) it reads that number; if it is older than :data:`.run.LATEST`, every newer migration runs,
in order, then whatever table, index or trigger is still missing is created from :mod:`hub.store.schema`, and
``user_version`` is set to :data:`.run.LATEST` — all in ONE durable transaction (``BEGIN IMMEDIATE``, committed under
``synchronous=FULL``): a crash or an error leaves the database as it was, at its old version, and the next start
tries again. A database at :data:`.run.LATEST` is left alone (opening it writes nothing). A database NEWER than this hub
(written by a later release) is refused with a :class:`~hub.errors.StoreError`: this hub cannot know what the later
one changed, and writing to it could break it.

A new database (``user_version`` 0, no tables) takes the same path: no migration finds anything to change, and
schema.py creates every table. Versions 1 to 3 are the first release's own tables (it created the other tables
lazily, on first use); migration 4 is the first one written here.

How to write a migration
------------------------
1. Change the table in :mod:`hub.store.schema` to its new shape (a new column goes at the END of its table, where
   ``ALTER TABLE ... ADD COLUMN`` puts it; a new table or index needs nothing else there).
2. Add ``mNNNN_what_it_does.py`` here (NNNN = :data:`.run.LATEST` + 1) with one function ``up(conn)`` that changes an
   EXISTING database from the previous version to this one, and add it to :data:`.run.MIGRATIONS` with a description.
   ``up`` runs inside the transaction: no ``BEGIN``/``COMMIT``, no ``VACUUM``. It does not create new tables or
   indexes (schema.py does, after the migrations; a table is created here only to rebuild one whose columns change
   in a way ``ALTER TABLE`` cannot: create the new shape, copy, drop, rename). It does not assume a table exists (a
   first-release database may lack any table that was created on first use; :func:`.tools.columns` is empty for a
   missing table). It keeps every row. A migration that only adds a table or an index still gets a number (with an
   ``up`` that does nothing), so an older hub refuses the database instead of running without it.
3. Never edit a migration that was released: fix forward with a new one.
4. ``tests/unit/store/test_migrations.py`` migrates every released database (``tests/data/db/``) and checks that
   the result has the same schema as a new database and that every row is intact; add the database of each
   release there.
"""
