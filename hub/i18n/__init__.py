"""The languages citizens and board readers read: the nine of the federal warning systems, their message catalogues
(gettext ``.po`` read through Babel) and the choice of a page's language."""
