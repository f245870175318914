use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{HandlerError, JobContext};

/// A job handler: a type with state and a table of methods.
///
/// The host creates one value (with [`Default`]) per instance and keeps it while the instance is
/// hot, so fields can carry state across calls; the host may still drop an instance at any time.
///
/// ```
/// use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods};
///
/// #[derive(Default)]
/// struct Heartbeat {
///     beats: u64,
/// }
///
/// impl Handler for Heartbeat {
///     const NAME: &'static str = "heartbeat";
///     const VERSION: &'static str = "0.1.0";
///     const DESCRIPTION: &'static str = "Counts beats.";
///
///     fn methods(m: &mut Methods<Self>) {
///         m.method("beat", "Counts one beat.", |h: &mut Heartbeat, _: &JobContext, _: ()| {
///             h.beats += 1;
///             Ok::<_, HandlerError>(h.beats)
///         });
///     }
/// }
///
/// // A handler can be exercised natively, without the host:
/// let methods = Methods::<Heartbeat>::collect();
/// let mut h = Heartbeat::default();
/// let ctx = JobContext::new("job", "run-1", 1, std::time::UNIX_EPOCH);
/// assert_eq!(methods.invoke(&mut h, &ctx, "beat", ""), Ok("1".to_owned()));
/// assert_eq!(methods.info().methods[0].name, "beat");
/// ```
pub trait Handler: Default + 'static {
    /// The handler's name, such as `ding-dong`. It must match the component file's name.
    const NAME: &'static str;
    /// The handler's version as semver text; `env!("CARGO_PKG_VERSION")` is a good choice.
    const VERSION: &'static str;
    /// One or two sentences saying what the handler is for.
    const DESCRIPTION: &'static str;
    /// What the handler asks the operator for (outbound HTTP, directories, configuration values,
    /// secrets); nothing by default. [`export_handler!`](crate::export_handler) writes it into
    /// the component, where the host reads it without running it.
    const CAPABILITIES: crate::capabilities::Capabilities = crate::capabilities::Capabilities::NONE;

    /// Registers the handler's methods with [`Methods::method`].
    fn methods(methods: &mut Methods<Self>);
}

type MethodFn<H> = Box<dyn Fn(&mut H, &JobContext, Value) -> Result<Value, HandlerError>>;

struct Method<H> {
    name: &'static str,
    description: &'static str,
    /// Builds the params schema. Only `describe()` needs it, so a call never pays for it.
    params_schema: fn() -> Option<String>,
    call: MethodFn<H>,
}

/// The method table of a [`Handler`], filled in by [`Handler::methods`] (see [`Methods::method`]
/// for an example).
pub struct Methods<H> {
    methods: Vec<Method<H>>,
}

/// One method as `describe()` reports it (see [`HandlerInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its params, as JSON text.
    pub params_schema: Option<String>,
}

/// What `describe()` reports for a handler; [`Methods::info`] builds it.
///
/// ```
/// # use schedulezero_sdk::{Handler, Methods};
/// # #[derive(Default)] struct Quiet;
/// # impl Handler for Quiet {
/// #     const NAME: &'static str = "quiet";
/// #     const VERSION: &'static str = "2.0.0";
/// #     const DESCRIPTION: &'static str = "Says nothing.";
/// #     fn methods(_: &mut Methods<Self>) {}
/// # }
/// let info = Methods::<Quiet>::collect().info();
/// assert_eq!((info.name.as_str(), info.version.as_str()), ("quiet", "2.0.0"));
/// assert!(info.methods.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerInfo {
    /// [`Handler::NAME`].
    pub name: String,
    /// [`Handler::VERSION`].
    pub version: String,
    /// [`Handler::DESCRIPTION`].
    pub description: String,
    /// The registered methods, in registration order.
    pub methods: Vec<MethodInfo>,
}

impl<H: Handler> Methods<H> {
    /// Builds the table by calling [`Handler::methods`].
    pub fn collect() -> Self {
        let mut methods = Self {
            methods: Vec::new(),
        };
        H::methods(&mut methods);
        methods
    }

    /// Registers a method.
    ///
    /// `P` is the params type: the caller's JSON is deserialized into it (a missing or `null`
    /// params value is read as `null`, then as `{}`, so `()`, `Option<T>` and structs whose
    /// fields all have defaults accept a call without params). `R` is serialized as the result.
    /// Registering a name twice replaces the earlier method.
    ///
    /// ```
    /// # use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods};
    /// #[derive(Default)]
    /// struct Counter(u64);
    ///
    /// impl Handler for Counter {
    ///     const NAME: &'static str = "counter";
    ///     const VERSION: &'static str = "0.1.0";
    ///     const DESCRIPTION: &'static str = "Counts calls.";
    ///     fn methods(m: &mut Methods<Self>) {
    ///         m.method("bump", "Adds one and returns the count.", |c: &mut Counter, _: &JobContext, _: ()| {
    ///             c.0 += 1;
    ///             Ok::<_, HandlerError>(c.0)
    ///         });
    ///     }
    /// }
    /// # let mut c = Counter::default();
    /// # let ctx = JobContext::new("j", "r", 1, std::time::UNIX_EPOCH);
    /// # assert_eq!(Methods::<Counter>::collect().invoke(&mut c, &ctx, "bump", "null"), Ok("1".into()));
    /// ```
    pub fn method<P, R, F>(
        &mut self,
        name: &'static str,
        description: &'static str,
        f: F,
    ) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&mut H, &JobContext, P) -> Result<R, HandlerError> + 'static,
    {
        let params_schema: fn() -> Option<String> =
            || serde_json::to_string(&schemars::schema_for!(P)).ok();
        let call: MethodFn<H> = Box::new(move |handler, ctx, params| {
            let params = parse_params::<P>(params)?;
            let result = f(handler, ctx, params)?;
            serde_json::to_value(result)
                .map_err(|e| HandlerError::failed(format!("cannot serialize the result: {e}")))
        });
        self.methods.retain(|m| m.name != name);
        self.methods.push(Method {
            name,
            description,
            params_schema,
            call,
        });
        self
    }

    /// What `describe()` reports.
    pub fn info(&self) -> HandlerInfo {
        HandlerInfo {
            name: H::NAME.to_owned(),
            version: H::VERSION.to_owned(),
            description: H::DESCRIPTION.to_owned(),
            methods: self
                .methods
                .iter()
                .map(|m| MethodInfo {
                    name: m.name.to_owned(),
                    description: m.description.to_owned(),
                    params_schema: (m.params_schema)(),
                })
                .collect(),
        }
    }

    /// Runs a method with JSON params and returns its JSON result, as the host's `invoke` does.
    /// Useful to unit-test a handler natively.
    pub fn invoke(
        &self,
        handler: &mut H,
        ctx: &JobContext,
        method: &str,
        params: &str,
    ) -> Result<String, HandlerError> {
        let Some(m) = self.methods.iter().find(|m| m.name == method) else {
            let known: Vec<&str> = self.methods.iter().map(|m| m.name).collect();
            return Err(HandlerError::UnknownMethod(format!(
                "{} has no method `{method}` (it has: {})",
                H::NAME,
                known.join(", ")
            )));
        };
        let params: Value = if params.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(params)
                .map_err(|e| HandlerError::invalid_params(format!("params are not JSON: {e}")))?
        };
        let result = (m.call)(handler, ctx, params)?;
        serde_json::to_string(&result)
            .map_err(|e| HandlerError::failed(format!("cannot serialize the result: {e}")))
    }
}

fn parse_params<P: DeserializeOwned>(params: Value) -> Result<P, HandlerError> {
    if params.is_null() {
        // `()` and `Option<T>` take null; a struct whose fields all default takes `{}`.
        return serde_json::from_value(Value::Null).or_else(|null_err| {
            serde_json::from_value(Value::Object(serde_json::Map::new())).map_err(|_| {
                HandlerError::invalid_params(format!("this method needs params: {null_err}"))
            })
        });
    }
    // ScheduleZero clients always send an object: `{}` means "no params" to a method that takes
    // none (`()`), as null does.
    if params.as_object().is_some_and(serde_json::Map::is_empty) {
        return serde_json::from_value(params)
            .or_else(|e| serde_json::from_value(Value::Null).map_err(|_| e))
            .map_err(|e| HandlerError::invalid_params(e.to_string()));
    }
    serde_json::from_value(params).map_err(|e| HandlerError::invalid_params(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Default)]
    struct Calc {
        calls: u32,
    }

    #[derive(Deserialize, JsonSchema)]
    struct AddParams {
        a: i64,
        b: i64,
    }

    #[derive(Deserialize, JsonSchema, Default)]
    #[serde(default)]
    struct Opts {
        verbose: bool,
    }

    impl Handler for Calc {
        const NAME: &'static str = "calc";
        const VERSION: &'static str = "1.2.3";
        const DESCRIPTION: &'static str = "Adds numbers.";

        fn methods(m: &mut Methods<Self>) {
            m.method(
                "add",
                "Adds a and b.",
                |c: &mut Calc, _: &JobContext, p: AddParams| {
                    c.calls += 1;
                    Ok(p.a + p.b)
                },
            )
            .method(
                "calls",
                "How many adds ran.",
                |c: &mut Calc, _: &JobContext, _: ()| Ok(c.calls),
            )
            .method(
                "opts",
                "Echoes the options.",
                |_: &mut Calc, _: &JobContext, o: Opts| Ok(o.verbose),
            )
            .method(
                "fail",
                "Always fails.",
                |_: &mut Calc, _: &JobContext, _: ()| {
                    Err::<(), _>(HandlerError::retryable("try later"))
                },
            );
        }
    }

    fn ctx() -> JobContext {
        JobContext::new("job", "run", 1, std::time::UNIX_EPOCH)
    }

    #[test]
    fn dispatches_json_to_typed_methods_and_keeps_state() {
        let methods = Methods::<Calc>::collect();
        let mut calc = Calc::default();
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "add", r#"{"a":2,"b":40}"#),
            Ok("42".into())
        );
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "calls", ""),
            Ok("1".into())
        );
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "calls", "{}"),
            Ok("1".into()),
            "ScheduleZero's empty job_params reach a method without params"
        );
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "opts", "null"),
            Ok("false".into())
        );
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "opts", r#"{"verbose":true}"#),
            Ok("true".into())
        );
    }

    #[test]
    fn reports_typed_errors() {
        let methods = Methods::<Calc>::collect();
        let mut calc = Calc::default();
        let unknown = methods.invoke(&mut calc, &ctx(), "mul", "{}");
        assert!(matches!(unknown, Err(HandlerError::UnknownMethod(m)) if m.contains("add, calls")));
        let bad = methods.invoke(&mut calc, &ctx(), "add", r#"{"a":"x"}"#);
        assert!(matches!(bad, Err(HandlerError::InvalidParams(_))));
        let missing = methods.invoke(&mut calc, &ctx(), "add", "null");
        assert!(
            matches!(missing, Err(HandlerError::InvalidParams(m)) if m.contains("needs params"))
        );
        let not_json = methods.invoke(&mut calc, &ctx(), "add", "{");
        assert!(matches!(not_json, Err(HandlerError::InvalidParams(m)) if m.contains("not JSON")));
        assert_eq!(
            methods.invoke(&mut calc, &ctx(), "fail", ""),
            Err(HandlerError::Retryable("try later".into()))
        );
    }

    #[test]
    fn describes_methods_with_schemas() {
        let info = Methods::<Calc>::collect().info();
        assert_eq!(info.name, "calc");
        assert_eq!(info.version, "1.2.3");
        let names: Vec<_> = info.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["add", "calls", "opts", "fail"]);
        let schema: Value =
            serde_json::from_str(info.methods[0].params_schema.as_deref().unwrap_or("null"))
                .unwrap_or(Value::Null);
        assert_eq!(schema["required"], serde_json::json!(["a", "b"]));
    }
}
