-- The name people use for a site ("Werk Süd"), beside its identifier (`name`, "werk-sud"), when the two differ.
ALTER TABLE sites ADD COLUMN display TEXT;
