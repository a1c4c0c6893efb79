-- Widget v0.3 (issue 14): a visitor's thumbs up (1) or down (-1) on an answer; NULL when
-- not rated. Shown in the customer's logs and counted per bot.
-- Existing policies on `messages` cover the new column.
ALTER TABLE messages ADD COLUMN rating bigint CHECK (rating IN (-1, 1));
