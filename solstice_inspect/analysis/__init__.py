"""Pure functions over Arrow / pandas: everything a view shows beyond raw rows."""
